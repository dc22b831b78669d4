#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Every name the target's code knows is in Documentation/dm-fvd.rst.

The names come from the code's own tables: the feature arguments of
fvd_features[] and fvd_tunables[], the status fields of fvd-status.h (by
position too), the words of the mode, prefetch state and cause, and the
messages fvd_prefetch_message() and
fvd_profile_message() take.  Prints one line per missing name
and exits 1 if there is one.
"""
import re
import sys

top = sys.argv[1] if len(sys.argv) > 1 else "."


def read(path):
    with open(f"{top}/{path}") as f:
        return f.read()


target = read("dm-fvd/dm-fvd-target.c")
prefetch = read("dm-fvd/fvd-prefetch.c")
profile = read("dm-fvd/fvd-profile.c")
status_h = read("dm-fvd/fvd-status.h")
doc = read("Documentation/dm-fvd.rst")


def table(source, start, pattern):
    """The first group of @pattern on the lines of the table from @start."""
    at = source.index(start)
    body = source[at:source.index("};", at)]
    return re.findall(pattern, body)


names = {
    "feature argument": table(target, "} fvd_features[] = {",
                              r'\{ "([a-z_]+)", (?:true|false),') +
    table(prefetch, "fvd_tunables[FVD_NR_TUNABLES] = {", r'"((?:prefetch|profile)_[a-z_]+)", '),
    "status field": table(status_h, "fvd_status_field_names[", r'= "([a-z_]+)",'),
    "prefetch state": table(prefetch, "[FVD_PREFETCH_OFF] =", r'\] = "([a-z_]+)",'),
    "prefetch cause": table(prefetch, "[FVD_PREFETCH_NO_CAUSE] =", r'\] = "([a-z_]+)",'),
    "metadata mode": re.findall(r'return "([a-z]+)";',
                                target[target.index("fvd_mode_name("):
                                       target.index("/* ---- table line")]),
}
message = prefetch[prefetch.index("int fvd_prefetch_message("):]
message = message[:message.index("\n}\n")]
names["message"] = [" ".join(m) for m in
                    re.findall(r'argv\[0\], "([a-z]+)"\)\) \{\n\t\tif \(!strcasecmp\(argv\[1\], "([a-z]+)"',
                               message)]
names["message"] += [f"{a} {b}" for a in re.findall(r'argv\[0\], "(prefetch)"', message)
                     for b in re.findall(r'argv\[1\], "([a-z]+)"', message)]
names["message"] += re.findall(r'argc == 3 && !strcasecmp\(argv\[0\], "([a-z]+)"', message)
message = profile[profile.index("int fvd_profile_message("):]
message = message[:message.index("\n}\n")]
names["message"] += [f"profile {b}" for b in re.findall(r'argv\[1\], "([a-z]+)"', message)]

missing = 0
for kind, found in names.items():
    if not found:
        print(f"no {kind} found in the code: the pattern no longer matches")
        missing += 1
    for name in sorted(set(found)):
        if name == "-":
            continue
        if f"``{name}``" not in doc and not re.search(rf"^{re.escape(name)}( <[^>]*>)?$", doc, re.M):
            print(f"{kind} {name}: not in Documentation/dm-fvd.rst")
            missing += 1

# status fields by position: the table's "N  ``name``" pairs
positions = dict((int(n), name) for n, name in re.findall(r"(\d+)\s+``([a-z_]+)``", doc))
for i, name in enumerate(names["status field"], 1):
    if positions.get(i) != name:
        print(f"status field {i} is {name} in fvd-status.h, {positions.get(i)} in the documentation")
        missing += 1
counts = {k: len(set(v)) for k, v in names.items()}
print("checked: " + ", ".join(f"{n} {k}s" for k, n in counts.items()))
sys.exit(1 if missing else 0)
