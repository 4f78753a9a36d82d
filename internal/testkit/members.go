package testkit

import (
	"encoding/json"
	"io"
	"net/http"
)

// Members sends req with c and returns the status and the @odata.id of
// each member of the Redfish collection it answers (none when the body is
// not one).
func Members(c *http.Client, req *http.Request) (int, []string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var coll struct{ Members []map[string]string }
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	json.Unmarshal(b, &coll)
	var ids []string
	for _, m := range coll.Members {
		ids = append(ids, m["@odata.id"])
	}
	return resp.StatusCode, ids, nil
}
