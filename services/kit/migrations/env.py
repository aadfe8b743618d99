from services.kit.migrate import KIT_VERSION_TABLE, run_env
from services.kit.models import KitBase

run_env(KitBase.metadata, version_table=KIT_VERSION_TABLE)
