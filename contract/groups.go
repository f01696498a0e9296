package contract

import "github.com/nats-io/jwt/v2"

// Group streams. A policy grant on a group must not list the group's edges
// in the CLOUD account JWT (it would grow with the fleet), so the member
// list lives in stream configurations that 'tether policy apply' writes,
// and a grant names only its group's subjects, a constant number whatever
// the group's size:
//
//   - every group a telemetry grant names gets a stream (GroupStream) that
//     sources TELEMETRY filtered on the members' subjects and republishes
//     what it stores on groups.<group>.edges.<edge>.telemetry.>;
//   - every group a command grant names gets a stream
//     (GroupCommandStream) whose subjects are its members'
//     groups.<group>.edges.<edge>.cmd.>, which COMMANDS sources as
//     edges.<edge>.cmd.>: a commander sends through the group, and a
//     command for an edge outside it finds no stream and is refused.

// GroupStreamPrefix starts the name of every group telemetry stream.
// Streams with it and GroupStreamMetadataKey are the policy's: an apply
// deletes those of groups no grant reads any more.
const GroupStreamPrefix = "GROUP_"

// GroupStreamMetadataKey is the stream metadata key that marks a stream
// as a group telemetry stream; its value is the group's name.
const GroupStreamMetadataKey = "tether.group"

// GroupStream returns the name of group's telemetry stream: GROUP_<group>
// (group names are lowercase DNS labels, valid in a stream name).
func GroupStream(group string) string { return GroupStreamPrefix + group }

// GroupPrefix starts the subjects a group grant reaches edges through:
// groups.<group>.edges.<edge>.…
const GroupPrefix = "groups."

// GroupEdgeSubject returns edge's subject rel (telemetry.>, cmd.reboot,
// …) through group: groups.<group>.edges.<edge>.<rel> (edge "*" for
// every member).
func GroupEdgeSubject(group, edge, rel string) string {
	return GroupPrefix + group + ".edges." + edge + "." + rel
}

// GroupLiveSubject returns the subjects group's stream republishes its
// members' telemetry on: groups.<group>.edges.*.telemetry.>.
func GroupLiveSubject(group string) string { return GroupEdgeSubject(group, "*", "telemetry.>") }

// GroupCommandStreamPrefix starts the name of every group command stream.
const GroupCommandStreamPrefix = "GROUPCMD_"

// GroupCommandStream returns the name of group's command stream:
// GROUPCMD_<group>.
func GroupCommandStream(group string) string { return GroupCommandStreamPrefix + group }

// GroupCommandSubject returns the subject a commander granted commands to
// group sends command rel (reboot, config.set, …) to edge on:
// groups.<group>.edges.<edge>.cmd.<rel> ("*" and ">" as in the grant).
func GroupCommandSubject(group, edge, rel string) string {
	return GroupEdgeSubject(group, edge, "cmd."+rel)
}

// CloudGroupCommandPermissions returns what the cloud user named user (or
// UserNameTemplate) needs to send the commands rels (relative to an
// edge's cmd.) to the members of group through its command stream: publish
// GroupCommandSubject(group, "*", rel) for each, the JetStream info calls
// of a publisher, and its own inbox.
func CloudGroupCommandPermissions(user, group string, rels []string) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add("$JS.API.INFO", "$JS.API.STREAM.INFO."+GroupCommandStream(group))
	for _, r := range sortedCopy(rels) {
		p.Pub.Allow.Add(GroupCommandSubject(group, "*", r))
	}
	p.Sub.Allow.Add(CloudInbox(user))
	return p
}

// CloudGroupReadPermissions returns what the cloud user named user (or
// UserNameTemplate) needs to read group's telemetry, live (GroupLiveSubject)
// and stored (GroupStream, through its own consumers CloudConsumerNames):
// the stream holds only the group's members, so any filter and the
// stream's direct and message gets are allowed on it. Replies come only on
// CloudInboxPrefix(user).
func CloudGroupReadPermissions(user, group string) jwt.Permissions {
	var p jwt.Permissions
	js, stream := "$JS.API.", GroupStream(group)
	p.Pub.Allow.Add(js+"INFO", js+"STREAM.INFO."+stream,
		js+"STREAM.MSG.GET."+stream, js+"DIRECT.GET."+stream, js+"DIRECT.GET."+stream+".>")
	for _, c := range CloudConsumerNames(user) {
		p.Pub.Allow.Add(
			js+"CONSUMER.CREATE."+stream+"."+c,
			js+"CONSUMER.CREATE."+stream+"."+c+".>",
			js+"CONSUMER.INFO."+stream+"."+c,
			js+"CONSUMER.DELETE."+stream+"."+c,
			js+"CONSUMER.MSG.NEXT."+stream+"."+c,
			"$JS.ACK."+stream+"."+c+".>",
			"$JS.FC."+stream+"."+c+".>",
		)
	}
	p.Sub.Allow.Add(GroupLiveSubject(group), CloudInbox(user))
	return p
}
