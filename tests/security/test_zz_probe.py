from tests.security.test_destination_binding import _h2_request
import pytest
@pytest.mark.parametrize("which", [0,1,2])
def test_probe(proxy, upstream, secret, canary, which):
    secret("P_TOKEN")
    run = proxy.register(("P_TOKEN",), allow=["evil.test", "other.coatcheck.test"])
    ph = run.placeholders["P_TOKEN"]
    port = upstream.port
    def req(authority, extra=()):
        return [(":method", "GET"), (":scheme", "https"), (":authority", authority),
                (":path", "/echo"), *extra, ("authorization", f"Bearer {ph}")]
    reqs = [req(f"api.coatcheck.test:{port}"), req(f"evil.test:{port}"), req(f"api.coatcheck.test:{port}", [("host", f"other.coatcheck.test:{port}")])]
    print(_h2_request(run, proxy, port, [reqs[which]]))
    print(proxy.audit_for(run))
