#!/usr/bin/env python3
"""A CalDAV/CardDAV client for the tests, independent of the migrator:
seeds a server and dumps what it holds (Python's http.client + ElementTree).

  dav.py BASE_URL USER PASSWORD CA_FILE COMMAND ...
  commands:
    mkcalendar PATH NAME [COLOUR] [DESCRIPTION]
    mkaddressbook PATH NAME
    mkcol PATH
    put PATH FILE            (prints the status)
    delete PATH
    dump HOME                every collection under HOME: JSON
                             {displayname: {"kind", "href", "colour", "description",
                              "items": {href: data}}}
    synctoken COLLECTION     the collection's DAV:sync-token
"""
import base64
import http.client
import json
import ssl
import sys
import urllib.parse
import xml.etree.ElementTree as ET

D = "{DAV:}"
C = "{urn:ietf:params:xml:ns:caldav}"
CR = "{urn:ietf:params:xml:ns:carddav}"
A = "{http://apple.com/ns/ical/}"


class Client:
    def __init__(self, base, user, password, ca):
        u = urllib.parse.urlsplit(base)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port or (443 if self.https else 80)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.auth = f"Basic {token}"
        self.ctx = ssl.create_default_context(cafile=ca) if self.https else None

    def request(self, method, path, body=b"", headers=None):
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        h = {"Authorization": self.auth}
        h.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        conn.request(method, urllib.parse.quote(path, safe="/@:%"), body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, data

    def propfind(self, path, props, depth="1"):
        body = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" ' \
               'xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:A="http://apple.com/ns/ical/"><D:prop>' + \
               "".join(props) + "</D:prop></D:propfind>"
        status, data = self.request("PROPFIND", path, body, {"Depth": depth, "Content-Type": "application/xml"})
        if status != 207:
            raise SystemExit(f"PROPFIND {path}: {status} {data[:300]!r}")
        return ET.fromstring(data)


def text(response, tag):
    for stat in response.findall(f"{D}propstat"):
        if "200" not in (stat.findtext(f"{D}status") or ""):
            continue
        el = stat.find(f"{D}prop/{tag}")
        if el is not None:
            return el.text
    return None


def dump(c, home):
    root = c.propfind(home, ["<D:resourcetype/>", "<D:displayname/>", "<A:calendar-color/>",
                              "<C:calendar-description/>", "<CR:addressbook-description/>"])
    out = {}
    for r in root.findall(f"{D}response"):
        href = urllib.parse.unquote(r.findtext(f"{D}href"))
        rt = r.find(f"{D}propstat/{D}prop/{D}resourcetype")
        if rt is None:
            continue
        if rt.find(f"{C}calendar") is not None:
            kind = "calendar"
        elif rt.find(f"{CR}addressbook") is not None:
            kind = "contacts"
        else:
            continue
        name = text(r, f"{D}displayname") or href.rstrip("/").rsplit("/", 1)[-1]
        items = {}
        listing = c.propfind(href, ["<D:getetag/>", "<D:resourcetype/>"])
        for item in listing.findall(f"{D}response"):
            ihref = urllib.parse.unquote(item.findtext(f"{D}href"))
            if ihref.endswith("/"):
                continue
            status, data = c.request("GET", ihref)
            if status == 200:
                items[ihref.rsplit("/", 1)[-1]] = data.decode("utf-8", "replace")
        out[name] = {
            "kind": kind,
            "href": href,
            "colour": text(r, f"{A}calendar-color"),
            "description": text(r, f"{C}calendar-description") or text(r, f"{CR}addressbook-description"),
            "items": items,
        }
    return out


def main():
    base, user, password, ca, cmd, *args = sys.argv[1:]
    c = Client(base, user, password, ca if ca != "-" else None)
    if cmd == "mkcalendar":
        path, name = args[0], args[1]
        props = f"<D:displayname>{name}</D:displayname>"
        if len(args) > 2 and args[2]:
            props += f"<A:calendar-color>{args[2]}</A:calendar-color>"
        if len(args) > 3 and args[3]:
            props += f"<C:calendar-description>{args[3]}</C:calendar-description>"
        body = '<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" ' \
               f'xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>{props}</D:prop></D:set></C:mkcalendar>'
        status, data = c.request("MKCALENDAR", path, body, {"Content-Type": "application/xml"})
    elif cmd == "mkaddressbook":
        path, name = args
        body = '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>' \
               f'<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>{name}</D:displayname>' \
               '</D:prop></D:set></D:mkcol>'
        status, data = c.request("MKCOL", path, body, {"Content-Type": "application/xml"})
    elif cmd == "mkcol":
        status, data = c.request("MKCOL", args[0])
    elif cmd == "put":
        path, file = args
        body = open(file, "rb").read()
        ctype = "text/vcard" if path.endswith(".vcf") else "text/calendar"
        status, data = c.request("PUT", path, body, {"Content-Type": ctype})
    elif cmd == "delete":
        status, data = c.request("DELETE", args[0])
    elif cmd == "dump":
        print(json.dumps(dump(c, args[0]), sort_keys=True))
        return
    elif cmd == "synctoken":
        root = c.propfind(args[0], ["<D:sync-token/>"], depth="0")
        print(text(root.find(f"{D}response"), f"{D}sync-token") or "")
        return
    else:
        raise SystemExit(f"unknown command {cmd}")
    print(status)
    if status >= 300:
        sys.stderr.write(data.decode("utf-8", "replace")[:500] + "\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
