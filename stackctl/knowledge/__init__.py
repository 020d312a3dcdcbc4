"""Local folders as Open WebUI knowledge collections: `./stack knowledge.sync FOLDER`.

``plan`` decides (pure), ``folder`` reads the disk, ``api`` talks to Open WebUI,
``sync`` runs a plan and remembers when each collection was last synced."""
