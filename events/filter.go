package events

import (
	"fmt"
	"strings"
)

// Filter is a parsed SSE $filter (DSP0266 §10.5 "Server-sent events"):
// comparisons of OriginResource, MessageId, RegistryPrefix, ResourceType or
// EventFormatType with eq or ne, combined with and, or and parentheses
// ("and" binds tighter). The zero Filter matches every event.
//
//	$filter=OriginResource eq '/redfish/v1/Systems/n1' and MessageId eq 'ResourceEvent.1.4.ResourcePoweredOn'
//	$filter=(RegistryPrefix eq 'TaskEvent') or (ResourceType eq 'ComputerSystem')
type Filter struct {
	root node
}

// Match reports whether the filter selects r.
func (f Filter) Match(r Record) bool { return f.root == nil || f.root.match(r) }

type node interface{ match(Record) bool }

type orNode []node
type andNode []node

func (n orNode) match(r Record) bool {
	for _, x := range n {
		if x.match(r) {
			return true
		}
	}
	return false
}

func (n andNode) match(r Record) bool {
	for _, x := range n {
		if !x.match(r) {
			return false
		}
	}
	return true
}

type cmpNode struct {
	prop  string // canonical property name
	value string // normalised operand
	neg   bool   // ne
}

func (c cmpNode) match(r Record) bool {
	var ok bool
	switch c.prop {
	case "OriginResource":
		ok = r.Origin == c.value
	case "MessageId":
		ok = messageIDMatches(c.value, r.Message.MessageID)
	case "RegistryPrefix":
		ok = strings.EqualFold(r.RegistryPrefix(), c.value)
	case "ResourceType":
		ok = strings.EqualFold(r.ResourceType(), c.value)
	case "EventFormatType":
		ok = c.value == "Event"
	}
	return ok != c.neg
}

// FilterProperties are the properties $filter understands.
var FilterProperties = []string{"OriginResource", "MessageId", "RegistryPrefix", "ResourceType", "EventFormatType"}

// ParseFilter parses a $filter value; "" is the match-everything filter.
func ParseFilter(s string) (Filter, error) {
	if strings.TrimSpace(s) == "" {
		return Filter{}, nil
	}
	toks, err := lex(s)
	if err != nil {
		return Filter{}, err
	}
	p := &parser{toks: toks}
	n, err := p.expr()
	if err != nil {
		return Filter{}, err
	}
	if p.pos < len(p.toks) {
		return Filter{}, fmt.Errorf("unexpected %q after a complete expression", p.toks[p.pos].text)
	}
	return Filter{root: n}, nil
}

type token struct {
	text   string
	quoted bool
}

func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			toks = append(toks, token{text: string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated string")
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' { // '' is a quote (OData)
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
				i++
			}
			toks = append(toks, token{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '(' && s[j] != ')' && s[j] != '\'' {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, nil
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peekWord(w string) bool {
	return p.pos < len(p.toks) && !p.toks[p.pos].quoted && strings.EqualFold(p.toks[p.pos].text, w)
}

func (p *parser) expr() (node, error) {
	var or orNode
	for {
		t, err := p.term()
		if err != nil {
			return nil, err
		}
		or = append(or, t)
		if !p.peekWord("or") {
			break
		}
		p.pos++
	}
	if len(or) == 1 {
		return or[0], nil
	}
	return or, nil
}

func (p *parser) term() (node, error) {
	var and andNode
	for {
		f, err := p.factor()
		if err != nil {
			return nil, err
		}
		and = append(and, f)
		if !p.peekWord("and") {
			break
		}
		p.pos++
	}
	if len(and) == 1 {
		return and[0], nil
	}
	return and, nil
}

func (p *parser) factor() (node, error) {
	if p.pos >= len(p.toks) {
		return nil, fmt.Errorf("unexpected end of filter")
	}
	if p.peekWord("(") {
		p.pos++
		n, err := p.expr()
		if err != nil {
			return nil, err
		}
		if !p.peekWord(")") {
			return nil, fmt.Errorf("missing ')'")
		}
		p.pos++
		return n, nil
	}
	if p.pos+3 > len(p.toks) {
		return nil, fmt.Errorf("incomplete comparison %q", p.toks[p.pos].text)
	}
	prop, op, val := p.toks[p.pos], p.toks[p.pos+1], p.toks[p.pos+2]
	p.pos += 3
	name := canonicalProperty(prop.text)
	if prop.quoted || name == "" {
		return nil, fmt.Errorf("%q is not a filter property (%s)", prop.text, strings.Join(FilterProperties, ", "))
	}
	var neg bool
	switch {
	case !op.quoted && strings.EqualFold(op.text, "eq"):
	case !op.quoted && strings.EqualFold(op.text, "ne"):
		neg = true
	default:
		return nil, fmt.Errorf("operator %q is not supported (eq, ne)", op.text)
	}
	if !val.quoted && (val.text == "(" || val.text == ")") {
		return nil, fmt.Errorf("missing value after %s %s", prop.text, op.text)
	}
	v := val.text
	if name == "OriginResource" {
		o, err := OriginPath(v)
		if err != nil {
			return nil, err
		}
		v = o
	}
	return cmpNode{prop: name, value: v, neg: neg}, nil
}

func canonicalProperty(s string) string {
	for _, p := range FilterProperties {
		if strings.EqualFold(p, s) {
			return p
		}
	}
	return ""
}

// OriginPath turns a resource URI of either view ("/redfish/v1/Systems/n1"
// or "/bmc/n1/redfish/v1/Systems/n1") into the path under the service
// root that records carry ("/Systems/n1").
func OriginPath(uri string) (string, error) {
	p := strings.TrimSuffix(uri, "/")
	if rest, ok := strings.CutPrefix(p, "/bmc/"); ok {
		if _, after, ok := strings.Cut(rest, "/"); ok {
			p = "/" + after
		}
	}
	rest, ok := strings.CutPrefix(p, "/redfish/v1")
	if !ok || (rest != "" && rest[0] != '/') {
		return "", fmt.Errorf("%q is not a /redfish/v1 resource URI", uri)
	}
	return rest, nil
}

// messageIDMatches compares a MessageId pattern with an event's MessageId
// (DSP0266 §9.6 format Registry.Major.Minor.Key): the registry and key must
// be equal; the pattern's version, if any, must be a prefix of the event's
// ("ResourceEvent.ResourcePoweredOn" and "ResourceEvent.1.ResourcePoweredOn"
// both match "ResourceEvent.1.4.ResourcePoweredOn").
func messageIDMatches(pattern, id string) bool {
	if pattern == id {
		return true
	}
	pp, ip := strings.Split(pattern, "."), strings.Split(id, ".")
	if len(pp) < 2 || len(ip) < 2 || len(pp) > len(ip) {
		return false
	}
	if pp[0] != ip[0] || pp[len(pp)-1] != ip[len(ip)-1] {
		return false
	}
	for i := 1; i < len(pp)-1; i++ {
		if pp[i] != ip[i] {
			return false
		}
	}
	return true
}
