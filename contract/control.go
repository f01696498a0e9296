package contract

// The control protocol between the operator's tools and an edge, carried over the edge's own authenticated leaf link: the tool
// connects to a hub as a short-lived control user of the edge's account
// (issued by the operator's store) and sends requests on $TETHER.CTL.>, which
// the hubs deliver to the edge only (the leaf user's permissions let the
// edge receive them; nobody but the store's holder can issue a control
// user).
//
// Key rotation (fleet.Rotate): the edge makes a new key pair on the device and
// proves it holds both the current and the new key; the store signs a leaf
// user JWT for the new key with the edge's scoped leaf signing key; the edge
// installs it (bundle rewritten atomically, 0600) and uses it from its next
// connection; the old user key is revoked and pushed to every hub, which
// closes the old link, and the edge comes back with the new one. The seed
// never leaves the edge.

// Control subjects (edge-local; the same at the hub in the edge account).
const (
	ControlRotateKey     = ControlPrefix + ".ROTATE.KEY"
	ControlRotateInstall = ControlPrefix + ".ROTATE.INSTALL"
	ControlWhoami        = ControlPrefix + ".WHOAMI"
)

// RotateKeyRequest asks the edge for a new key pair.
type RotateKeyRequest struct {
	Nonce string `json:"nonce"`
}

// RotateKeyResponse carries the new public key, signed by the new key (proof of
// possession) and by the current one (proof that the answer comes from the
// edge that holds the current credentials).
type RotateKeyResponse struct {
	User       string `json:"user"`
	Sig        string `json:"sig"`
	Current    string `json:"current"`
	CurrentSig string `json:"current_sig"`
	Error      string `json:"error,omitempty"`
}

// RotateInstallRequest hands the edge its new leaf user JWT.
type RotateInstallRequest struct {
	JWT string `json:"jwt"`
}

// RotateInstallResponse confirms what the edge will use from its next connection.
type RotateInstallResponse struct {
	User  string `json:"user"`
	Error string `json:"error,omitempty"`
}

// WhoamiResponse names the edge and the user key its current link was
// opened with.
type WhoamiResponse struct {
	Edge string `json:"edge"`
	User string `json:"user"`
}

// RotateChallenge is what both keys sign in a RotateKeyResponse. The prefix keeps it
// from ever being a valid answer to a server's connect nonce.
func RotateChallenge(edge, nonce, newUser string) []byte {
	return []byte("tether-rotate-v1:" + edge + ":" + nonce + ":" + newUser)
}
