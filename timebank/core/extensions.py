"""Extensions, created once here and bound to the app in the factory."""

from typing import TYPE_CHECKING

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from ledger.models import metadata
from timebank.core.replica import ReplicaAwareSession

db = SQLAlchemy(metadata=metadata, session_options={"class_": ReplicaAwareSession})

if TYPE_CHECKING:
    from flask_sqlalchemy.model import Model as FlaskModel
    from sqlalchemy.orm import DeclarativeBase

    class Model(FlaskModel, DeclarativeBase):
        """What ``db.Model`` is to a type checker, which takes no attribute as a base class."""

else:
    #: The base class of the application's tables: ``db.Model`` under a name type checkers accept.
    Model = db.Model

migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
# Limits are declared where they apply (login, check-in); nothing is limited by default.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
