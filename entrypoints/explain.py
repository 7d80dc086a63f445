"""MLproject entry point ``explain`` (``seaice explain --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("explain")
