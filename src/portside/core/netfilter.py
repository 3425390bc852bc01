"""Would this host's firewall drop this packet? A pure model of the netfilter filter hooks.

Theory of operation
-------------------
``portside doctor`` reads the host's rules (``iptables-save``, ``nft -j list ruleset`` and
``nft -a list ruleset``) and asks, for packets it makes up, what the kernel would do with
them: does a rule drop the load balancer's traffic to a task's dynamic host port, is a
container port open to anyone? This module opens nothing: it takes texts and JSON already
read. :func:`parse_iptables_save` (in ``netfilter_iptables``) and :func:`parse_nft_json`
(in ``netfilter_nft``) compile the rules once into small matcher closures
(``netfilter_rules``); :func:`evaluate` walks them.

Vocabulary and the rules of the walk, as netfilter applies them:

* **hook**: input, forward or output of the IPv4 filter path. A :class:`Packet` is the
  *first* packet of a connection at one hook: ``dst``/``dport`` are what the hook sees (after
  DNAT), ``orig_dst``/``orig_dport`` what the client sent (conntrack's original tuple).
  The packet is DNAT'd, for ``--ctstate DNAT`` and ``ct status dnat``, when they differ.
* **base chain**: a chain attached to the hook: iptables' INPUT/FORWARD/OUTPUT of the
  filter table (priority 0) and every nft chain of type filter (or route) in families ip
  and inet. The packet must pass every one of them, in priority order (ties keep the order
  of the rulesets given, then of the JSON). An accept ends only the current base chain; a
  drop or reject ends everything. A base chain that falls off its end (or returns) applies
  its policy.
* **jump / goto / return**: a jump calls a chain and resumes after the rule when that chain
  returns; a goto replaces the current chain, so its return goes to the caller (from a
  base chain: the policy). Non-terminating statements (LOG, MARK, counter, log, ...)
  continue with the next rule.

Uncertainty
-----------
Some matches cannot be evaluated here: unknown iptables match modules (``-m recent``,
``-m set``), ``-m addrtype``, nft ``xt``/``fib``/``meta mark``/``limit`` expressions, and
fields the caller left unknown (``in_iface=None``, ``sport=None``). Such a match answers
"unknown". A rule with an unknown match is treated as *not matching*, so evaluation
continues as if the rule were absent: reporting every such rule as a drop would raise
false alarms on Docker's own rules. When the rule's known matches all match and it would
drop or reject (directly, through a vmap entry, or by a jump/goto to a chain that, walked
for this packet, ends in a drop or reject), it is recorded in ``Verdict.uncertain`` so the
doctor can say "this rule may drop the packet". Accepting rules with unknown matches are
not recorded: skipping them can only turn an accept into a drop, never hide a drop.

Deliberate simplifications: only IPv4, TCP and UDP; only first packets (``ct_state``
"new" unless said otherwise), so ``--syn`` holds and ct status bits other than dnat are
unset; the source port is unknown unless ``Packet.sport`` is given; iptables extension
targets other than ACCEPT/DROP/REJECT/RETURN (LOG, NFQUEUE, ...) continue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from portside.core.netfilter_iptables import parse_iptables_save
from portside.core.netfilter_nft import parse_nft_json
from portside.core.netfilter_rules import Action, Matcher, Packet, Rule, RuleRef, Ruleset, Verdict, View

__all__ = ["Packet", "RuleRef", "Ruleset", "Verdict", "evaluate", "parse_iptables_save", "parse_nft_json"]

MAX_CHAIN_DEPTH = 64  # iptables refuses loops; this guards against malformed input
_STOP = ("drop", "reject")

Chains = Mapping[str, tuple[Rule, ...]]
Outcome = tuple[str | None, RuleRef | None]  # (accept|drop|reject, rule) or (None, None) = returned


def evaluate(rulesets: Sequence[Ruleset], packet: Packet) -> Verdict:
    """What the filter hook ``packet.hook`` does with ``packet``, given every backend's rules.

    Returns a :class:`Verdict`: ``decided_by`` is the dropping/rejecting rule, ``policy``
    names the base chain whose policy dropped it, ``uncertain`` the rules met on the way
    whose matches could not be evaluated but which might have dropped it.
    Raises ``ValueError`` when jumps nest deeper than :data:`MAX_CHAIN_DEPTH` (a loop).
    """
    view = View.of(packet)
    bases = sorted(
        (base for ruleset in rulesets for base in ruleset.base_chains if base.hook == packet.hook),
        key=lambda base: base.priority,
    )
    uncertain: list[RuleRef] = []
    for base in bases:
        action, ref = _walk(base.chains, base.name, view, uncertain, 0)
        if action in _STOP:
            return Verdict(action, ref, None, _unique(uncertain))
        if action is None and base.policy.lower() == "drop":
            return Verdict("drop", None, base.policy_text, _unique(uncertain))
    return Verdict("accept", None, None, _unique(uncertain))


def _unique(refs: list[RuleRef]) -> tuple[RuleRef, ...]:
    return tuple(dict.fromkeys(refs))


def _walk(chains: Chains, name: str, view: View, uncertain: list[RuleRef], depth: int) -> Outcome:
    if depth > MAX_CHAIN_DEPTH:
        raise ValueError(f"chain {name!r}: jumps nest deeper than {MAX_CHAIN_DEPTH} chains (a loop?)")
    for rule in chains[name]:
        hit = _match_all(rule.matches, view)
        if hit is False:
            continue
        action = rule.action
        if action.kind == "vmap":
            chosen, maybe = _choose(action, view)
            if any(_would_stop(chains, entry, view, depth) for entry in maybe):
                uncertain.append(rule.ref)
            if chosen is None:
                continue
            action = chosen
        if hit is None:
            if _would_stop(chains, action, view, depth):
                uncertain.append(rule.ref)
            continue
        kind = action.kind
        if kind == "continue":
            continue
        if kind == "return":
            return None, None
        if kind in ("accept", "drop", "reject"):
            return kind, rule.ref
        assert action.target is not None
        outcome = _walk(chains, action.target, view, uncertain, depth + 1)
        if kind == "goto" or outcome[0] is not None:
            return outcome
    return None, None


def _match_all(matches: Sequence[Matcher], view: View) -> bool | None:
    result: bool | None = True
    for match in matches:
        answer = match(view)
        if answer is False:
            return False
        if answer is None:
            result = None
    return result


def _choose(vmap: Action, view: View) -> tuple[Action | None, list[Action]]:
    """The vmap entry this packet selects, and the actions of entries that might apply."""
    maybe: list[Action] = []
    for matches, action in vmap.entries:
        hit = _match_all(matches, view)
        if hit:
            return action, maybe
        if hit is None:
            maybe.append(action)
    return None, maybe


def _would_stop(chains: Chains, action: Action, view: View, depth: int) -> bool:
    """Whether ``action``, were its rule to match, would drop or reject the packet."""
    if action.kind in _STOP:
        return True
    if action.kind in ("jump", "goto") and action.target is not None:
        return _walk(chains, action.target, view, [], depth + 1)[0] in _STOP
    if action.kind == "vmap":
        chosen, maybe = _choose(action, view)
        candidates = [*maybe, chosen] if chosen else maybe
        return any(_would_stop(chains, entry, view, depth) for entry in candidates)
    return False
