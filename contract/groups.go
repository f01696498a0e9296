package contract

import "github.com/nats-io/jwt/v2"

// Group telemetry streams. A policy grant that reads a group's telemetry
// must not list the group's edges in the CLOUD account JWT (it would grow
// with the fleet), so every group a telemetry grant names gets a stream of
// its own in CLOUD that sources the TELEMETRY stream filtered on the
// group's members: the member list lives in that stream's configuration
// (written by 'tether policy apply'), and the grant names only the stream
// and the group's live subject, a constant number of subjects whatever
// the group's size.

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

// GroupLivePrefix is where group streams republish what they store, for
// live readers: groups.<group>.edges.<edge>.telemetry.<subject>.
const GroupLivePrefix = "groups."

// GroupLiveSubject returns the subjects group's stream republishes its
// members' telemetry on: groups.<group>.>.
func GroupLiveSubject(group string) string { return GroupLivePrefix + group + ".>" }

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
