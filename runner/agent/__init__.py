"""The agent loop that runs *inside* the sandbox (the ``coatcheck/agent`` image).

Standard library and the Anthropic SDK only (tests/test_architecture.py checks it): the image
holds these modules and the SDK's wheels, nothing of the host side.
"""
