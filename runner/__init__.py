"""coatcheck runner: job specs, run orchestration, the CLI and the in-sandbox init."""
