"""invoke wiring only, one module per concern; each module ends in a Collection.

Options are parsed here, library functions called, results printed; the one
error edge (``edge``) turns a StackError into a one-line message and its exit code."""
