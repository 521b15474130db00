import sys
from pathlib import Path

# tools/ is a plain script directory, not an installed package; putting the
# repository root on sys.path lets the tests import it as `tools.schemas_check`.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
