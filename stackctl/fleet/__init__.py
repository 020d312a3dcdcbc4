"""Beyond one machine: this machine's Foundry Local offered to another machine's stack
(``edge``), and the stack's gateway in front of several hosts and a cloud (``fleet``)."""
