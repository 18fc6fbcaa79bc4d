"""`python -m dltrain` and the `dltrain` command."""

import sys


def entry():
    # Commands import NumPy, matplotlib and h5py when they start (a second or more): Ctrl-C in that
    # time should exit like any other interrupt, not print an import traceback.
    try:
        from dltrain.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    entry()
