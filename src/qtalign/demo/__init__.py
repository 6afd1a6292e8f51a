"""A small multilingual sentiment sample shipped with qtalign for the demo run."""
