"""MLproject entry point ``optical_evaluate`` (``seaice optical evaluate --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("optical", "evaluate")
