"""RFC 7643 resources as Ostiary serves them, declared with ``scim2-models``.

Only the attributes the directory really keeps are declared (§2: "a service provider MAY
... support a subset"): a published attribute that were silently dropped would lie to the
identity provider. ``/Schemas``, ``/ResourceTypes`` and the PATCH engine's ``ResourceSpec``
are all derived from these classes, so they cannot disagree.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field
from scim2_models import (
    URN,
    Bulk,
    CaseExact,
    ChangePassword,
    ComplexAttribute,
    Context,
    ETag,
    ExtensibleStringEnum,
    Filter,
    Mutability,
    Pagination,
    Patch,
    Reference,
    Required,
    Resource,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    Sort,
    Uniqueness,
)
from scim2_models import AuthenticationScheme as Scheme

from ostiary.scim.rfc7644_patch import AttrSpec, ResourceSpec

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
#: Ostiary's own resource schema (RFC 7643 §3: a schema URI outside the IETF namespace).
TECHNICAL_USER_SCHEMA = "urn:ostiary:params:scim:schemas:core:2.0:TechnicalUser"
#: Most resources one list response carries (ServiceProviderConfig ``filter.maxResults``).
MAX_RESULTS = 200


class Name(ComplexAttribute):
    """The components of the user's real name."""

    given_name: str | None = None
    family_name: str | None = None


class Email(ComplexAttribute):
    """The user's e-mail address (the directory keeps one)."""

    value: str | None = None
    type: str | None = None
    primary: bool | None = None


class GroupMembership(ComplexAttribute):
    """A group the user is a member of (read-only: change it on the group)."""

    value: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    # The quoted name is what scim2-models publishes as referenceTypes, not a forward ref.
    ref: Annotated[Reference["Group"] | None, Mutability.read_only] = Field(  # noqa: UP037
        None, serialization_alias="$ref", validation_alias="$ref"
    )
    display: Annotated[str | None, Mutability.read_only] = None


class User(Resource[Any]):
    """User Account"""

    __schema__ = URN(USER_SCHEMA)

    user_name: Annotated[str | None, Uniqueness.server, Required.true] = None
    name: Name | None = None
    display_name: str | None = None
    #: Always has a value (the directory's status), so required; a request without it
    #: means ``true`` (docs/scim.md).
    active: Annotated[bool | None, Required.true] = None
    emails: list[Email] | None = None
    groups: Annotated[list[GroupMembership] | None, Mutability.read_only] = None


class GroupMember(ComplexAttribute):
    """A member of the group by user ID: a person (a SCIM ``User``, with ``$ref``) or a
    technical user (``value`` only: the ``id`` of its ``TechnicalUser``, docs/scim.md)."""

    value: Annotated[str | None, Mutability.immutable, CaseExact.true] = None
    ref: Annotated[Reference["User"] | None, Mutability.immutable] = Field(  # noqa: UP037
        None, serialization_alias="$ref", validation_alias="$ref"
    )


class Group(Resource[Any]):
    """Group"""

    __schema__ = URN(GROUP_SCHEMA)

    display_name: Annotated[str | None, Required.true] = None
    members: list[GroupMember] | None = None


class TechnicalUserOwner(ComplexAttribute):
    """Who answers for the technical user: a person (a SCIM ``User``) or a group."""

    class Type(ExtensibleStringEnum):
        """What owns the technical user."""

        person = "person"
        group = "group"

    value: Annotated[str | None, Mutability.read_only, CaseExact.true] = None
    type: Annotated[Type | None, Mutability.read_only] = None
    # Quoted names, as above; a Union because referenceTypes lists both (RFC 7643 §7).
    ref: Annotated[Reference[Union["User", "Group"]] | None, Mutability.read_only] = Field(  # noqa: UP007, UP037
        None, serialization_alias="$ref", validation_alias="$ref"
    )


class TechnicalUser(Resource[Any]):
    """Technical User: a machine identity, managed by its owners in Ostiary (read-only)"""

    __schema__ = URN(TECHNICAL_USER_SCHEMA)

    # Every attribute is readOnly: owners create technical users and their secrets in
    # Ostiary, an identity provider only sees and references them (docs/scim.md).
    display_name: Annotated[str | None, Mutability.read_only] = None
    description: Annotated[str | None, Mutability.read_only] = None
    active: Annotated[bool | None, Mutability.read_only] = None
    owner: Annotated[TechnicalUserOwner | None, Mutability.read_only] = None
    home_subaccount: Annotated[str | None, Mutability.read_only] = None


def schemas(*, groups: bool) -> list[Schema]:
    """The schemas ``/Schemas`` publishes."""
    found = [User.to_schema()]
    if groups:
        found.append(Group.to_schema())
    found.append(TechnicalUser.to_schema())
    return found


def resource_types(*, groups: bool) -> list[ResourceType]:
    """The resource types ``/ResourceTypes`` publishes."""
    found = [ResourceType.from_resource(User)]
    if groups:
        found.append(ResourceType.from_resource(Group))
    technical = ResourceType.from_resource(TechnicalUser)
    technical.description = "Technical users (machine identities); read-only over SCIM"
    found.append(technical)
    return found


def service_provider_config() -> ServiceProviderConfig:
    """What this service provider supports (RFC 7643 §5); the documentation is the
    installation's own docs/scim.md, which has no URL of its own to publish."""
    return ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        pagination=Pagination(cursor=False, index=True),
        authentication_schemes=[
            Scheme(
                type=Scheme.Type.oauthbearertoken,
                name="Bearer token",
                description="A SCIM token from POST /api/v1/scim-tokens, sent as "
                "Authorization: Bearer",
                primary=True,
            )
        ],
    )


def _attr_spec(raw: dict[str, Any]) -> AttrSpec:
    return AttrSpec(
        name=raw["name"],
        multi_valued=bool(raw.get("multiValued")),
        mutability=raw.get("mutability", "readWrite"),
        case_exact=bool(raw.get("caseExact")),
        required=bool(raw.get("required")),
        sub={s["name"].lower(): _attr_spec(s) for s in raw.get("subAttributes") or []},
    )


#: Attributes every resource has (RFC 7643 §3.1), beside its schema's own.
_COMMON = [
    {"name": "id", "mutability": "readOnly", "caseExact": True},
    {"name": "externalId", "mutability": "readWrite", "caseExact": True},
    {"name": "meta", "mutability": "readOnly"},
]


def resource_spec(model: type[Resource[Any]]) -> ResourceSpec:
    """What the PATCH engine and the filters need to know of ``model``'s attributes."""
    dumped = model.to_schema().model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    attributes = [_attr_spec(a) for a in [*_COMMON, *dumped["attributes"]]]
    return ResourceSpec(
        schema=str(model.__schema__), attributes={a.name.lower(): a for a in attributes}
    )
