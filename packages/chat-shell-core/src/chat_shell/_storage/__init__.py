"""History storage: the contract every backend implements (``contract``), the built-in backends
(``memory``, ``json_files`` over ``document``, ``remote``), backend look-up by entry point
(``plugins``), export/import (``transfer``) and what the SQL backends share (``rows``)."""
