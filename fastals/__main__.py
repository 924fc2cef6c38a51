"""``python -m fastals``: the same command line as the ``fastals`` script."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="fastals")
