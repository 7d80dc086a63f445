"""MLproject entry point ``predict`` (``seaice predict --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("predict")
