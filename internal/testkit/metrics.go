package testkit

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one scrape of a /metrics endpoint, parsed.
type Scrape struct {
	Raw      []byte
	Families map[string]*dto.MetricFamily
}

// ScrapeMetrics GETs url (with Basic credentials when user is not empty)
// and parses the Prometheus text format; anything but a 200 that parses
// fails t.
func ScrapeMetrics(t testing.TB, url, user, pass string) Scrape {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s\n%s", url, resp.Status, raw)
	}
	return ParseMetrics(t, raw)
}

// ScrapeHandler scrapes a /metrics handler in process.
func ScrapeHandler(t testing.TB, h http.Handler) Scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d\n%s", rec.Code, rec.Body.Bytes())
	}
	return ParseMetrics(t, rec.Body.Bytes())
}

// ParseMetrics parses the Prometheus text format.
func ParseMetrics(t testing.TB, raw []byte) Scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, raw)
	}
	return Scrape{Raw: raw, Families: fams}
}

// Names are the metric family names scraped, sorted.
func (s Scrape) Names() []string {
	var out []string
	for n := range s.Families {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Value is the sum over the series of family name whose labels include
// labels (name=value pairs): a counter's or gauge's value, a histogram's
// sample count. A family that is not there sums to 0.
func (s Scrape) Value(name string, labels ...string) float64 {
	f := s.Families[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// LabelValues lists the values label takes in family name's series.
func (s Scrape) LabelValues(name, label string) []string {
	var out []string
	if f := s.Families[name]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// PromtoolCheck runs `promtool check metrics` (Debian package prometheus)
// on raw and fails t on any problem it reports; it skips when promtool is
// not installed, unless CI is set (ToolOrSkip).
func PromtoolCheck(t testing.TB, raw []byte) {
	t.Helper()
	promtool := ToolOrSkip(t, "promtool", "prometheus")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
