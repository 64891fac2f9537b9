"""``python -m hpcdist`` is the same CLI as the ``hpcdist`` command."""

from hpcdist.cli import main

if __name__ == "__main__":
    main()
