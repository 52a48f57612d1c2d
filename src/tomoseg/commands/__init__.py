"""Sub-commands of the `tomoseg` CLI; each module defines `register(subparsers)`."""
