"""What is behind the gateway: each upstream's connection (``connection``), its live
model list (``models``), re-finding one that moved (``follow``), and several upstreams
with the routing policy (``pool``)."""
