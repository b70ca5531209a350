"""Command-line entry point (placeholder, filled below)."""


def main(argv=None) -> int:
    return 0
