"""MLproject entry point ``preprocess`` (``seaice preprocess --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("preprocess")
