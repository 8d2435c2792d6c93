"""``python -m xmppd.client.cli``: the ``xmpp`` command without installing it."""

import sys

from xmppd.client.cli import main

sys.exit(main())
