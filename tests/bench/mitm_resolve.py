"""mitmdump addon for the benchmark's baseline: dial 127.0.0.1 for the test name (as coatcheck's
--resolve does), then relabel the connection with the name so mitmproxy reuses it (as coatcheck's
addon does); without the relabel, every request would open a new upstream connection."""

NAME = "api.coatcheck.test"


class Resolve:
    def server_connect(self, data):  # type: ignore[no-untyped-def]
        host, port = data.server.address
        if host == NAME:
            data.server.address = ("127.0.0.1", port)

    def server_connected(self, data):  # type: ignore[no-untyped-def]
        if data.server.sni == NAME and data.server.address:
            object.__setattr__(data.server, "address", (NAME, data.server.address[1]))


addons = [Resolve()]
