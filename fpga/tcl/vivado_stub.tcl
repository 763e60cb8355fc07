# Vivado's commands as stubs for tclsh: each records its call and returns a plausible handle, so the
# generated scripts run without Vivado (fpga/tcl_check.py). Usage:
#   tclsh vivado_stub.tcl LOG SCRIPT
# Every call is one line of LOG: the command and its arguments, separated by \x1f. A command that is
# neither Tcl's nor stubbed here is an error (a typo in a generator fails the check). `file copy` and
# `file mkdir` are recorded, not done.

set stub_log [open [lindex $argv 0] w]
set stub_project ""

proc stub_record {name args} {
    puts $::stub_log [join [concat [list $name] $args] "\x1f"]
}

# Returns the last argument (the object a get_* or create_* command names).
proc stub_named {name args} {
    stub_record $name {*}$args
    return [lindex $args end]
}

foreach command {
    set_property read_verilog read_xdc update_compile_order update_ip_catalog
    create_bd_design apply_bd_automation connect_bd_net connect_bd_intf_net assign_bd_address
    validate_bd_design save_bd_design generate_target add_files launch_runs wait_on_run
} {
    proc $command {args} "stub_record $command {*}\$args"
}
foreach command {
    get_bd_cells get_bd_pins get_bd_intf_pins get_bd_addr_spaces get_bd_addr_segs get_files get_runs get_filesets
    create_bd_cell
} {
    proc $command {args} "stub_named $command {*}\$args"
}

proc create_project {args} {
    stub_record create_project {*}$args
    set ::stub_project [expr {[lsearch $args -in_memory] >= 0 ? "in_memory" : [lindex $args 0]}]
    return $::stub_project
}
proc current_fileset {args} { stub_record current_fileset {*}$args; return sources_1 }
proc get_projects {args} { stub_record get_projects {*}$args; return $::stub_project }
proc current_project {args} { stub_record current_project {*}$args; return $::stub_project }
proc get_board_parts {args} {
    stub_record get_board_parts {*}$args
    return [string map {* 9.9} [lindex $args end]]
}
proc make_wrapper {args} { stub_record make_wrapper {*}$args; return wrapper.v }
proc get_property {name args} {
    stub_record get_property $name {*}$args
    switch -- $name {
        PROGRESS { return 100% }
        DIRECTORY { return impl_1 }
        default { return "" }
    }
}

namespace eval ipx {}
foreach command {
    package_project infer_bus_interfaces infer_bus_interface associate_bus_interfaces add_memory_map
    add_address_block add_address_space create_xgui_files update_checksums check_integrity save_core
    unload_core
} {
    proc ipx::$command {args} "stub_record ipx::$command {*}\$args"
}
foreach command {get_bus_interfaces get_memory_maps get_address_blocks get_address_spaces add_bus_parameter} {
    proc ipx::$command {args} "stub_named ipx::$command {*}\$args"
}
proc ipx::open_core {args} { stub_record ipx::open_core {*}$args; return core }

rename file stub_real_file
proc file {sub args} {
    if {$sub in {copy mkdir delete}} {
        stub_record "file $sub" {*}$args
        return
    }
    return [stub_real_file $sub {*}$args]
}

proc exit {args} { stub_record exit {*}$args; error "the script called exit $args" }

proc unknown {args} {
    error "not a Tcl command and not a stubbed Vivado command: [lindex $args 0]"
}

source [lindex $argv 1]
close $stub_log
