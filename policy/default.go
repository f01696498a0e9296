package policy

// DefaultFile is the policy in force when none was applied: today's
// behaviour written out. Each edge reaches only its own telemetry, commands
// and status (the data-path contract); no edge exposes a service, calls a
// cloud service or links with another edge; the cloud roles are those of
// 'tether user add --role'.
const DefaultFile = `# Tether access policy (the default: what Tether does without a policy file).
# Check:  tether policy check FILE      Review:  tether policy diff FILE
# Apply:  tether policy apply FILE --push URL   (reaches connected users live)
version: 1

# Edges and their labels; groups select edges by label. Every edge always
# sends its own telemetry and status and receives its own commands; nothing
# else crosses unless a rule below says so.
edges: {}
groups: {}

# Cloud roles: 'tether user add NAME --role ROLE' signs the user with the
# role's key, so a change here reaches its connected users without new creds.
roles:
  reader:
    description: read every edge's telemetry, live and from the TELEMETRY stream
    telemetry: ["*"]
  commander:
    description: send any command to any edge
    commands:
      - to: ["*"]
        subjects: [">"]
  admin:
    description: anything inside the CLOUD account (never edges' accounts or $SYS)
    admin: true
`

// Default returns the parsed default policy.
func Default() *Policy {
	p, _ := Parse("default policy", []byte(DefaultFile))
	return p
}
