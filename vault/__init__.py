"""The vault: secrets encrypted at rest, injected by the proxy, never printed.

secret.py      SecretValue, SecretMeta, Secret (frozen types; values masked in repr)
validate.py    names, values, domains, surfaces, methods, paths (pure, fix-it messages)
crypto.py      AES-256-GCM bound to each secret's name and rules (only cryptography user)
keystore.py    where the master key lives (only keyring user)
fileformat.py  vault.json <-> frozen records (pure)
store.py       Vault: atomic, locked reads and writes of HOME/vault.json
cli.py         ``coatcheck vault set|list|rm`` (vault_group)
"""
