"""In the claude-code image: ``python3 -I /opt/coatcheck/agent/cc_main.py`` runs the wrapper.

Imported by name: this file runs in the image, beside runner/agent, not in the host's packages.
"""

import importlib
import sys

sys.path[:0] = ["/opt/coatcheck/agent"]
sys.exit(importlib.import_module("runner.agent.claude_code").main())
