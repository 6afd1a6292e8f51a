"""Each kind of output folder as a type: its file names, readers (and simple writers), record and provenance links."""
