"""The privacy policy: every field the agent can ship, by data class, and what happens to it.

This table is what ``docs/privacy.md`` explains to the hospital's data protection officer;
a field that is not in it falls under the **default-deny rule** (:data:`UNKNOWN_RULE`):

- a string inside the raw Windows data (``winlog.event_data.*``, ``winlog.user_data.*``),
  whose names vary with every event id and which Sigma rules match on, is treated as free
  text: *scrubbed* (the identities of the record and the structured patterns are replaced
  by their pseudonyms); numbers and booleans there are kept (they name no one);
- anything else not listed is *dropped*.

No field leaves as it was read unless this table keeps it, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Treatment(StrEnum):
    """What happens to a field's value before it leaves the hospital."""

    KEEP = "keep"  # shipped as is; the table says why it names no one
    USER = "user"  # an account: one canonical form, then a keyed pseudonym
    DOMAIN = "domain"  # an account's domain: well-known ones kept, else a host pseudonym
    HOST = "host"  # a machine's name: its first label, then a keyed pseudonym
    DNS = "dns"  # a DNS name: internal ones pseudonymised, external ones kept
    IP = "ip"  # an address: internal ones mapped into fd00::/8, public ones kept
    SID = "sid"  # a Windows SID: built-in ones kept, accounts' pseudonymised
    SCRUB = "scrub"  # free text: identities and patterns inside replaced by pseudonyms
    HASH = "hash"  # any string, exactly as written, → a keyed pseudonym
    DROP = "drop"  # never leaves

    # Spellings of the first configuration format (``Kind``): ``name`` and ``text``.
    NAME = "user"
    TEXT = "hash"

    @classmethod
    def _missing_(cls, value: object) -> Treatment | None:
        legacy = {"name": cls.USER, "text": cls.HASH}
        return legacy.get(str(value).lower()) if isinstance(value, str) else None


#: Treatments whose values are identities: collected first, so that free text of the same
#: record can have them replaced by the very same pseudonyms.
IDENTITY_TREATMENTS = frozenset({Treatment.USER, Treatment.DOMAIN, Treatment.HOST,
                                 Treatment.DNS, Treatment.IP, Treatment.SID, Treatment.HASH})


@dataclass(frozen=True)
class DataClass:
    """One row of the DPO's table: a kind of data, its treatment, why, and its fields."""

    name: str
    treatment: Treatment
    why: str
    fields: tuple[str, ...]


_ED = "winlog.event_data."

IDENTITIES = DataClass("identities (accounts, people)", Treatment.USER,
                       "they name staff, and patients on kiosk or shared accounts", (
    "user.name", "source.user.name", "destination.user.name",
    *(_ED + f for f in (
        "SubjectUserName", "TargetUserName", "User", "AccountName", "TargetOutboundUserName",
        "SamAccountName", "ParentUser", "SourceUser", "TargetUser", "UserName",
        "OldTargetUserName", "NewTargetUserName", "DisplayName", "UserPrincipalName",
        "ClientUserName", "SubjectAccountName", "TargetAccountName", "param1Account",
        "LogonAccount", "CallerUserName")),
))
DOMAINS = DataClass("account domains", Treatment.DOMAIN,
                    "a local account's domain is the computer's name; built-in domains "
                    "(NT AUTHORITY, BUILTIN...) are kept, Sigma rules test them", (
    "user.domain", "source.user.domain", "destination.user.domain",
    *(_ED + f for f in (
        "SubjectDomainName", "TargetDomainName", "Domain", "AccountDomain",
        "TargetOutboundDomainName", "SubjectAccountDomain", "TargetAccountDomain",
        "ClientDomain", "CallerDomain")),
))
SIDS = DataClass("account identifiers (SIDs)", Treatment.SID,
                 "a domain account's SID is as personal as its name; built-in SIDs and "
                 "well-known relative ids (-500 Administrator, -512 Domain Admins...) are "
                 "kept, Sigma rules match on them", (
    "user.id",
    *(_ED + f for f in (
        "SubjectUserSid", "TargetUserSid", "TargetSid", "MemberSid", "UserSid", "SidHistory",
        "UserSID", "SourceSid", "ParentUserSid", "CallerSid", "AccountSid")),
))
HOSTS = DataClass("hosts (workstations, servers, devices)", Treatment.HOST,
                  "hospital machine names often embed a ward or a person's name", (
    "host.name", "host.hostname", "observer.name", "winlog.computer_name",
    *(_ED + f for f in (
        "WorkstationName", "Workstation", "ComputerName", "SourceHostname", "ClientName",
        "MachineName", "TargetServerName", "SourceWorkstation", "CallerComputerName",
        "TargetMachine", "DeviceName")),
))
DNS_NAMES = DataClass("DNS names", Treatment.DNS,
                      "internal names (one label, or under the hospital's internal domains) "
                      "are hosts and are pseudonymised; external names are kept: they are "
                      "the other party (a C2 server, a phishing site) Sigma rules and "
                      "analysts look for", (
    "source.domain", "destination.domain", "url.domain", "host.domain",
    *(_ED + f for f in ("DestinationHostname", "QueryName", "ServiceHost")),
))
ADDRESSES = DataClass("IP addresses", Treatment.IP,
                      "an internal address maps to a desk and a person; public addresses "
                      "(the attacker's side) are kept so that campaigns across "
                      "establishments stay visible (``ip_scope: all`` changes that)", (
    "source.ip", "destination.ip", "host.ip",
    *(_ED + f for f in (
        "IpAddress", "SourceIp", "DestinationIp", "SourceAddress", "DestAddress",
        "ClientAddress", "ClientIP", "SourceNetworkAddress", "DestinationAddress", "Address",
        "IPAddress", "RemoteAddress", "LocalAddress")),
))
FREE_TEXT = DataClass("free text, paths, command lines, URLs", Treatment.SCRUB,
                      "Sigma rules match on them (process images, command lines, paths), "
                      "so they are kept with every identity inside replaced: the record's "
                      "own user, host and address values, home folders (C:\\Users\\<x>, "
                      "/home/<x>), URL parameters naming a patient (nom=, prenom=, ipp=...), "
                      "NAME_Firstname file names, documents under patient folders, e-mail "
                      "addresses, internal IPv4 addresses", (
    "message", "url.full", "file.path", "file.name",
    "process.command_line", "process.executable", "process.name",
    "process.parent.command_line", "process.parent.executable", "process.parent.name",
    "email.subject",
    *(_ED + f for f in (
        "CommandLine", "ParentCommandLine", "Image", "ParentImage", "NewProcessName",
        "ParentProcessName", "ProcessName", "TargetFilename", "ImageLoaded",
        "CurrentDirectory", "TargetObject", "Details", "ScriptBlockText", "Payload",
        "ServiceFileName", "ImagePath", "ObjectName", "ShareLocalPath", "ShareName",
        "RelativeTargetName", "PipeName", "HomeDirectory", "ProfilePath", "ScriptPath",
        "MemberName", "SourceImage", "TargetImage", "CallTrace", "QueryResults",
        "Destination", "Path", "FileName", "TaskName", "TaskContent", "Data", "HostApplication",
        "ContextInfo", "Message", "ErrorMessage", "Description")),
))
TECHNICAL = DataClass("technical fields", Treatment.KEEP,
                      "what happened and how (ids, codes, types, hashes, ports, vendors): "
                      "Sigma rules and analysts need them, and they name no one", (
    "@timestamp", "event.kind", "event.category", "event.type", "event.action",
    "event.outcome", "event.code", "event.provider", "event.module", "event.dataset",
    "event.severity", "event.created", "event.ingested",
    "source.port", "destination.port", "network.protocol", "network.transport",
    "network.direction", "observer.type", "observer.vendor", "observer.product",
    "process.pid", "process.parent.pid", "process.hash.md5", "process.hash.sha1",
    "process.hash.sha256", "file.hash.md5", "file.hash.sha1", "file.hash.sha256",
    "file.extension", "host.os.family", "host.os.name", "host.os.version", "tags",
    "winlog.channel", "winlog.event_id", "winlog.provider_name", "winlog.record_id",
    "winlog.task", "winlog.opcode", "winlog.level",
    *(_ED + f for f in (
        "LogonType", "Status", "SubStatus", "FailureReason", "AuthenticationPackageName",
        "LogonProcessName", "LmPackageName", "KeyLength", "ProcessGuid", "ParentProcessGuid",
        "SourceProcessGuid", "TargetProcessGuid", "LogonGuid", "LogonId", "TargetLogonId",
        "SubjectLogonId", "TargetLogonGuid", "Hashes", "Hash", "IntegrityLevel", "Protocol",
        "Initiated", "SourcePort", "DestinationPort", "IpPort", "SourceIsIpv6",
        "DestinationIsIpv6", "EventType", "RuleName", "UtcTime", "CreationUtcTime",
        "PreviousCreationUtcTime", "TicketOptions", "TicketEncryptionType", "ServiceType",
        "StartType", "AccessMask", "AccessList", "ObjectType", "ObjectServer", "Properties",
        "PrivilegeList", "ImpersonationLevel", "ElevatedToken", "VirtualAccount",
        "RestrictedAdminMode", "Signed", "Signature", "SignatureStatus", "GrantedAccess",
        "Product", "Company", "FileVersion", "OriginalFileName", "StartAddress",
        "StartFunction", "StartModule", "SourceProcessId", "TargetProcessId", "NewProcessId",
        "ProcessId", "ParentProcessId", "ThreadId", "SourceThreadId", "TokenElevationType",
        "MandatoryLabel", "QueryStatus", "State", "Version", "SchemaVersion", "Type",
        "ServiceSid", "DestinationPortName", "SourcePortName", "Archived", "IsExecutable",
        "Operation", "NewThreadId", "ShareAccess", "AuditPolicyChanges", "CategoryId",
        "SubcategoryGuid", "SubcategoryId", "PackageName", "TransmittedServices",
        "PreAuthType", "CertSerialNumber", "CertThumbprint")),
))
DROPPED = DataClass("dropped", Treatment.DROP,
                    "the unparsed original record would repeat every identity in clear", (
    "event.original",
))

#: The policy, class by class, in the order the DPO document lists them.
DATA_CLASSES: tuple[DataClass, ...] = (IDENTITIES, DOMAINS, SIDS, HOSTS, DNS_NAMES, ADDRESSES,
                                       FREE_TEXT, TECHNICAL, DROPPED)

#: Field path → treatment: the declarative table, flattened.
POLICY: dict[str, Treatment] = {
    path: data_class.treatment for data_class in DATA_CLASSES for path in data_class.fields
}

#: Paths under which an unlisted string is free text (scrubbed); elsewhere it is dropped.
RAW_DATA_PREFIXES: tuple[tuple[str, ...], ...] = (("winlog", "event_data"),
                                                   ("winlog", "user_data"))

UNKNOWN_RULE = ("A field not in the table is never shipped as read: inside the raw Windows "
                "data (winlog.event_data, winlog.user_data) its text is scrubbed like any "
                "free text and its numbers kept; anywhere else it is dropped.")

#: Fields never dropped whatever the overrides say: without them an event is not an event.
REQUIRED = frozenset({"@timestamp", "event.id", "organization", "agent"})

#: ``message`` of a record the agent did not recognise (plain syslog from any program):
#: what it says is unknown, so by default it does not leave (``unparsed_messages``).
UNPARSED_MESSAGE_DEFAULT = Treatment.DROP
