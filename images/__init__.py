"""How coatcheck's images are built without any registry.

The recipes ship as package data beside this module, so an installed coatcheck (``pipx install``)
builds its images exactly as a clone does:

- ``base/packages.txt``: what ``debootstrap`` puts into a minimal Debian trixie, which
  ``docker import`` turns into ``coatcheck/base:trixie``;
- ``sandbox/Dockerfile``: the sandbox image, ``FROM`` the base, with coatcheck's PID 1
  (``sandbox/init.py``) copied into the build context.

``images.build`` does the building; ``coatcheck images build`` is its command.
"""
