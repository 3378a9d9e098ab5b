"""The recipe of ``coatcheck/claude-code`` (data, no code): ``Dockerfile``, ``pin.txt`` (the
release of the ``claude`` executable and its digests) and ``cc_main.py`` (the entry point copied
into the image). ``images.claude_code_image`` builds it."""
