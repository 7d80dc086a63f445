"""MLproject entry point ``study`` (``seaice study --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("study")
