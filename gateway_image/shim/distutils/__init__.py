"""The one distutils function Enterprise Gateway 3 imports (Debian's Python 3.11 ships
without distutils, and the image has no setuptools)."""
