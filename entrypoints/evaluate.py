"""MLproject entry point ``evaluate`` (``seaice evaluate --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("evaluate")
