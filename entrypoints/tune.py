"""MLproject entry point ``tune`` (``seaice tune --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("tune")
