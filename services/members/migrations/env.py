from services.kit.migrate import run_env
from services.members.models import Base

run_env(Base.metadata)
