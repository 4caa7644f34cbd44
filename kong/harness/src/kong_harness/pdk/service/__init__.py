"""``kong.service``: ``kong/pdk/service.lua``; the harness models only its ``request`` and
``response`` namespaces (``kong/pdk/service/{request,response}.lua``)."""
