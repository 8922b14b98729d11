"""Serve the studio: `python app.py` is the same as `studio ui`."""
import sys

from studio.cli import main

if __name__ == "__main__":
    sys.exit(main(["ui", *sys.argv[1:]]))
