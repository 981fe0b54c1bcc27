# Runs inside `cmake --install`, where CMAKE_INSTALL_PREFIX is the prefix installed to and
# file(INSTALL) puts DESTDIR in front of every destination. See CMakeLists.txt.
string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")
if(prefix STREQUAL "/usr" OR prefix STREQUAL "/usr/local")
	set(unitdir "${prefix}/lib/systemd/system")
	set(sysusersdir "${prefix}/lib/sysusers.d")
else()
	set(unitdir /etc/systemd/system)
	set(sysusersdir /etc/sysusers.d)
endif()
if(PYEXEC_SYSTEMD_UNITDIR)
	set(unitdir "${PYEXEC_SYSTEMD_UNITDIR}")
endif()
if(PYEXEC_SYSUSERSDIR)
	set(sysusersdir "${PYEXEC_SYSUSERSDIR}")
endif()

# @CMAKE_INSTALL_PREFIX@ in the templates becomes the prefix installed to.
set(CMAKE_INSTALL_PREFIX "${prefix}")
foreach(unit pyexec-sandboxd.service pyexec-gatewayd.service)
	configure_file("${PYEXEC_SYSTEMD_SRC}/${unit}.in" "${PYEXEC_SYSTEMD_OUT}/${unit}" @ONLY)
endforeach()
file(INSTALL DESTINATION "${unitdir}" TYPE FILE
	FILES "${PYEXEC_SYSTEMD_OUT}/pyexec-sandboxd.service"
	      "${PYEXEC_SYSTEMD_OUT}/pyexec-gatewayd.service"
	      "${PYEXEC_SYSTEMD_SRC}/pyexec.slice")
file(INSTALL DESTINATION "${sysusersdir}" TYPE FILE
	FILES "${PYEXEC_SYSTEMD_SRC}/sysusers.d/pyexec.conf")
