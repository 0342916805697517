"""A 1,000-tool catalog in memory: 20 third-party-style servers x 50 tools, plus every built-in
contract, for the lazy-mode search tests and bench/catalog.py.

The fake servers follow what real MCP servers for these services expose: one tool per verb and
resource (`github-create_issue`, `gdrive-upload_file`), a one-line description and a few
parameters. Nothing here is tuned to a test query.
"""

from __future__ import annotations

from typing import Any

import schemas

VERBS = {
    "list": ("List {plural} in {service}, newest first, with paging.", ["limit", "cursor"]),
    "get": ("Get one {noun} from {service} by its id, with all its fields.", ["id"]),
    "create": ("Create a new {noun} in {service}.", ["title", "body"]),
    "update": ("Update fields of an existing {noun} in {service}.", ["id", "fields"]),
    "delete": ("Delete a {noun} from {service} permanently.", ["id"]),
}

SERVERS: dict[str, tuple[str, list[str]]] = {
    "github": (
        "GitHub",
        [
            "issue",
            "pull_request",
            "repository",
            "branch",
            "commit",
            "release",
            "gist",
            "label",
            "milestone",
            "workflow_run",
        ],
    ),
    "gitlab": (
        "GitLab",
        [
            "merge_request",
            "pipeline",
            "project",
            "job",
            "snippet",
            "tag",
            "runner",
            "deploy_key",
            "environment",
            "wiki_page",
        ],
    ),
    "slack": (
        "Slack",
        [
            "message",
            "channel",
            "user",
            "reaction",
            "reminder",
            "bookmark",
            "user_group",
            "pin",
            "scheduled_message",
            "canvas",
        ],
    ),
    "jira": (
        "Jira",
        ["ticket", "sprint", "board", "epic", "comment", "worklog", "version", "component", "filter", "dashboard"],
    ),
    "gdrive": (
        "Google Drive",
        ["file", "folder", "permission", "revision", "shared_drive", "comment", "reply", "shortcut", "label", "change"],
    ),
    "notion": (
        "Notion",
        ["page", "database", "block", "property", "comment", "user", "template", "view", "relation", "workspace"],
    ),
    "postgres": (
        "PostgreSQL",
        ["table", "row", "index", "view", "schema", "role", "function", "trigger", "sequence", "extension"],
    ),
    "calendar": (
        "Google Calendar",
        [
            "event",
            "calendar",
            "attendee",
            "reminder",
            "availability",
            "room",
            "acl_rule",
            "color",
            "setting",
            "recurrence",
        ],
    ),
    "linear": (
        "Linear",
        [
            "issue",
            "project",
            "cycle",
            "team",
            "label",
            "roadmap",
            "initiative",
            "attachment",
            "comment",
            "workflow_state",
        ],
    ),
    "sentry": (
        "Sentry",
        ["error_event", "issue", "project", "release", "alert_rule", "team", "dsn_key", "replay", "monitor", "tag"],
    ),
    "stripe": (
        "Stripe",
        [
            "customer",
            "invoice",
            "payment_intent",
            "subscription",
            "refund",
            "product",
            "price",
            "coupon",
            "payout",
            "dispute",
        ],
    ),
    "hubspot": (
        "HubSpot",
        ["contact", "company", "deal", "ticket", "note", "task", "meeting", "pipeline", "owner", "campaign"],
    ),
    "salesforce": (
        "Salesforce",
        [
            "account",
            "opportunity",
            "lead",
            "case",
            "contact",
            "quote",
            "contract",
            "order",
            "report",
            "forecast_category",
        ],
    ),
    "zendesk": (
        "Zendesk",
        [
            "support_ticket",
            "agent",
            "macro",
            "trigger",
            "group",
            "organization",
            "article",
            "satisfaction_rating",
            "view",
            "sla_policy",
        ],
    ),
    "twilio": (
        "Twilio",
        [
            "sms_message",
            "call",
            "phone_number",
            "recording",
            "conversation",
            "verify_service",
            "queue",
            "webhook",
            "sip_domain",
            "fax",
        ],
    ),
    "dropbox": (
        "Dropbox",
        [
            "shared_link",
            "paper_doc",
            "team_member",
            "file_request",
            "namespace",
            "device",
            "session",
            "tag",
            "property_group",
            "lock",
        ],
    ),
    "figma": (
        "Figma",
        [
            "design_file",
            "component",
            "style",
            "frame",
            "comment",
            "project",
            "team_library",
            "variable",
            "webhook",
            "dev_resource",
        ],
    ),
    "confluence": (
        "Confluence",
        [
            "wiki_page",
            "space",
            "blog_post",
            "attachment",
            "comment",
            "label",
            "template",
            "whiteboard",
            "task",
            "content_property",
        ],
    ),
    "shopify": (
        "Shopify",
        [
            "order",
            "product",
            "collection",
            "inventory_item",
            "discount",
            "fulfillment",
            "draft_order",
            "gift_card",
            "location",
            "sales_channel",
        ],
    ),
    "datadog": (
        "Datadog",
        [
            "monitor",
            "dashboard",
            "metric",
            "log_query",
            "incident",
            "slo",
            "synthetic_test",
            "downtime",
            "notebook",
            "host",
        ],
    ),
}

# A few tools real servers of these services have beside plain CRUD (replacing some CRUD rows).
SPECIAL: dict[str, dict[str, tuple[str, list[str]]]] = {
    "gdrive": {
        "upload_file": ("Upload a file to Google Drive from base64 content.", ["name", "content_base64", "parent_id"]),
        "export_file": ("Export a Google Docs file as PDF, DOCX or plain text.", ["id", "mime_type"]),
    },
    "shopify": {"sales_report": ("Report total sales per day, week or month for a date range.", ["start", "end"])},
    "salesforce": {"pipeline_report": ("Summarise the opportunity pipeline by stage and close month.", ["owner"])},
    "datadog": {"query_metrics": ("Query a metric's time series over a time range.", ["query", "from", "to"])},
    "github": {"search_code": ("Search code across repositories.", ["query"])},
}


def _tool(name: str, description: str, params: list[str]) -> dict[str, Any]:
    properties = {p: {"type": "string", "description": p.replace("_", " ").capitalize() + "."} for p in params}
    return {
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties, "required": params[:1]},
    }


def third_party_tools() -> dict[str, list[dict[str, Any]]]:
    """20 servers, 50 tools each: {server: [tool, ...]}."""
    out: dict[str, list[dict[str, Any]]] = {}
    for server, (service, nouns) in SERVERS.items():
        tools = [_tool(name, text, params) for name, (text, params) in SPECIAL.get(server, {}).items()]
        for noun in nouns:
            for verb, (template, params) in VERBS.items():
                if len(tools) == 50:
                    break
                words = noun.replace("_", " ")
                plural = words + ("es" if words.endswith(("s", "x", "ch")) else "s")
                text = template.format(noun=words, plural=plural, service=service)
                name = f"{verb}_{noun}s" if verb == "list" else f"{verb}_{noun}"
                tools.append(_tool(name, text, params))
        out[server] = tools
    return out


def builtin_tools() -> dict[str, list[dict[str, Any]]]:
    return {domain: schemas.load(domain)["tools"] for domain in schemas.domains() if domain != "demo"}


def catalog_tools() -> dict[str, dict[str, Any]]:
    """Every tool by catalog name (`<server>-<tool>`): the built-ins and the 1,000 third-party ones."""
    tools: dict[str, dict[str, Any]] = {}
    for group in (builtin_tools(), third_party_tools()):
        for server, listing in group.items():
            for tool in listing:
                name = f"{server}-{tool['name']}"
                tools[name] = {**tool, "name": name}
    return tools
