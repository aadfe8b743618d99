from services.kit.migrate import run_env
from services.records.models import Base

run_env(Base.metadata)
