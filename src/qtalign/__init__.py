"""qtalign: question-translation alignment study toolkit."""

__version__ = "0.1.0"
