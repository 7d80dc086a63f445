"""MLproject entry point ``train`` (``seaice train --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("train")
