"""Keel settings: topic modules composed here and nowhere else.

Every value comes from the environment with an embedded default (see README, "Configuration").
Do not add code after these imports.
"""

from .data_stores import *
from .env import BASE_DIR, StartupError
from .realtime import *
from .security import *
from .tasks import *
from .web import *
