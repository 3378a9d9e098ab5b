"""Why the proxy allowed or refused something: one enum, every reason it can give. Pure.

A :class:`Reason` is a ``StrEnum``: its value is the stable snake_case word that goes into the
refusal body, the ``X-Coatcheck-Reason`` header and the audit line, and it compares equal to
that string. Add a member here before using a new reason anywhere.
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class Reason(StrEnum):
    # -- allowed --------------------------------------------------------------------------
    ALLOWLISTED = "allowlisted"
    CIDR_ALLOWED = "cidr_allowed"
    RESOLVE_MAPPED = "resolve_mapped"
    PUBLIC_ADDRESS = "public_address"
    BOUND = "bound"  # the request's Host / :authority name its real destination
    OPAQUE = "opaque"  # an --allow-opaque host: checked, then spliced without interception

    # -- the connection or its destination --------------------------------------------------
    UNKNOWN_CLIENT = "unknown_client"
    NOT_ALLOWLISTED = "not_allowlisted"
    IP_LITERAL = "ip_literal"
    BAD_HOST = "bad_host"
    DNS_FAILED = "dns_failed"
    ADDRESS_REFUSED = "address_refused"
    UNCHECKED_DESTINATION = "unchecked_destination"
    SNI_MISMATCH = "sni_mismatch"
    NOT_TLS = "not_tls"  # an opaque tunnel's first bytes are no TLS ClientHello
    DIAL_FAILED = "dial_failed"  # an opaque host's checked address did not answer: 502

    # -- the resolved address (one per answer of core.addresses.refusal_reason) -------------
    ADDRESS_CLOUD_METADATA = "address_cloud_metadata"
    ADDRESS_UNSPECIFIED = "address_unspecified"
    ADDRESS_LOOPBACK = "address_loopback"
    ADDRESS_PRIVATE = "address_private"
    ADDRESS_CGNAT = "address_cgnat"
    ADDRESS_LINK_LOCAL = "address_link_local"
    ADDRESS_DOCUMENTATION = "address_documentation"
    ADDRESS_BENCHMARKING = "address_benchmarking"
    ADDRESS_6TO4 = "address_6to4"
    ADDRESS_MULTICAST = "address_multicast"
    ADDRESS_BROADCAST = "address_broadcast"
    ADDRESS_RESERVED = "address_reserved"
    ADDRESS_IPV4_MAPPED = "address_ipv4_mapped"
    ADDRESS_IPV4_TRANSLATED = "address_ipv4_translated"
    ADDRESS_IPV4_COMPATIBLE = "address_ipv4_compatible"
    ADDRESS_NAT64 = "address_nat64"
    ADDRESS_TEREDO = "address_teredo"
    ADDRESS_UNIQUE_LOCAL = "address_unique_local"
    ADDRESS_IPV6_LINK_LOCAL = "address_ipv6_link_local"
    ADDRESS_SITE_LOCAL = "address_site_local"
    ADDRESS_NOT_AN_IP = "address_not_an_ip"

    # -- the request ------------------------------------------------------------------------
    BAD_REQUEST_LINE = "bad_request_line"
    HOST_MISMATCH = "host_mismatch"
    DUPLICATE_HOST = "duplicate_host"
    UNCHECKED_REQUEST = "unchecked_request"
    PLACEHOLDER_LEAK = "placeholder_leak"
    TOO_LARGE = "too_large"
    UNDECODABLE_BODY = "undecodable_body"
    COMPRESSED_BODY = "compressed_body"
    MULTIPART_BODY = "multipart_body"
    BUFFER_FULL = "buffer_full"  # the run's (or the proxy's) buffered-body budget is spent: 429
    BODY_TIMEOUT = "body_timeout"  # a buffered body did not arrive in time: 408
    UPGRADE_REFUSED = "upgrade_refused"  # a switch to any protocol but WebSocket (403, 502)
    TRANSFER_ENCODING = "transfer_encoding"  # a transfer coding other than chunked (400, 502)

    # -- the connection, before any request --------------------------------------------------
    TOO_MANY_CONNECTIONS = "too_many_connections"  # over the run's cap: closed at once

    # -- the response, and the proxy itself -------------------------------------------------
    UNDECODABLE_RESPONSE = "undecodable_response"
    PARTIAL_RESPONSE = "partial_response"  # a 206 to a request that carried a value: 502
    # a real value in a response to a request that carried none: 502 or the connection killed;
    # under --on-leak block the run's later requests too (403)
    UNEXPECTED_VALUE = "unexpected_value"
    INTERNAL_ERROR = "internal_error"
    WORKER_LOST = "worker_lost"  # the run's proxy worker died: the run is cut off (fail closed)
    UNCHECKED = "unchecked"  # an audit line for a request no decision was made on

    @classmethod
    def for_address(cls, why: str) -> Reason:
        """The reason for an address :func:`core.addresses.refusal_reason` answered ``why``
        for; an answer without a member here is still a refusal (fail closed)."""
        try:
            return cls(f"address_{why}")
        except ValueError:
            return cls.ADDRESS_REFUSED
