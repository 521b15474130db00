"""`python -m notifications`: customer notifications and their log."""

from kit.service import serve
from notifications.bootstrap import definition
from notifications.settings import NotificationsSettings

if __name__ == "__main__":
    serve(NotificationsSettings(), definition())
