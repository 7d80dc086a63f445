"""MLproject entry point ``optical_train`` (``seaice optical train --help``)."""

from entrypoints import run

if __name__ == "__main__":
    run("optical", "train")
